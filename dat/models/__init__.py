"""Networks of the tagger: the SampleCNN feature extractor and the LP / DC heads."""

from .heads import DomainClassifier, LabelPredictor
from .log_mel_cnn import LogMelCNN
from .sample_cnn import SampleCNN, load_clmr_state_dict
from .tagger import DatNet, Nets, Tagger, feature_extractor

__all__ = ["SampleCNN", "LogMelCNN", "feature_extractor", "load_clmr_state_dict", "LabelPredictor", "DomainClassifier", "Nets", "Tagger", "DatNet"]
