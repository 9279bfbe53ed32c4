"""dat: domain adversarial training of a music tagger on noisemix manifests."""
__version__ = "0.1.0"
