"""Networks of the tagger: the SampleCNN feature extractor and the LP / DC heads."""

from .heads import DomainClassifier, LabelPredictor
from .sample_cnn import SampleCNN, load_clmr_state_dict
from .tagger import DatNet, Nets, Tagger

__all__ = ["SampleCNN", "load_clmr_state_dict", "LabelPredictor", "DomainClassifier", "Nets", "Tagger", "DatNet"]
