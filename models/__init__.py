"""LatentSky models: PyTorch networks, augmentations and the shared training loop.

Pure PyTorch: nothing here imports the backend or the app, touches the web or a database.
Every model has a JSON-ready ``config`` and a ``from_config`` classmethod; a registry stores
``(config, state_dict)`` and rebuilds with :func:`build_model` (or :func:`load_model` for a
checkpoint file).
"""

from models.augment import (
    AugmentConfig,
    Augmenter,
    add_noise,
    affine_transform,
    center_crop,
    flip,
    fwhm_to_sigma_pixels,
    gaussian_blur,
    jitter_crop,
    redden,
    rotate,
)
from models.autoencoder import ConvAutoencoder
from models.backbone import BackboneConfig, ResidualBackbone, fold_batchnorm
from models.base import ImageModel
from models.calibration import (
    balanced_decision_weights,
    decide,
    expected_calibration_error,
    fit_temperature,
    fit_temperature_and_bias,
    reliability_diagram,
)
from models.checkpoint import load_checkpoint, load_model, save_checkpoint
from models.classifier import EmbeddingClassifier, ImageClassifier, MLPHead
from models.contrastive import SimCLREncoder, nt_xent_loss
from models.data import ArrayDataset, BlockBatchSampler, make_loader, read_rows
from models.device import autocast, pick_device, seed_everything
from models.emulator import Emulator, TargetScaling, pit_calibration
from models.errors import BandMismatchError, InputShapeError, ModelError, band_indices
from models.extinction import extinction_coefficient, extinction_coefficients
from models.factory import MODEL_CLASSES, build_model
from models.inference import (
    InferenceCancelled,
    batched_apply,
    embed,
    predict_classes,
    predict_targets,
    prepare_for_inference,
    reconstruction_errors,
    reconstruction_scores,
)
from models.mdn import MDNHead, Mixture
from models.normalize import BandNormalizer, NormalizationConfig, fit_normalization, robust_sigma
from models.training import TrainConfig, TrainResult, evaluate, fit
from models.uncertainty import MCPrediction, entropy, mc_dropout_predict, mutual_information

__all__ = [
    "MODEL_CLASSES",
    "ArrayDataset",
    "AugmentConfig",
    "Augmenter",
    "BackboneConfig",
    "BandMismatchError",
    "BandNormalizer",
    "BlockBatchSampler",
    "ConvAutoencoder",
    "EmbeddingClassifier",
    "Emulator",
    "ImageClassifier",
    "ImageModel",
    "InferenceCancelled",
    "InputShapeError",
    "MCPrediction",
    "MDNHead",
    "MLPHead",
    "Mixture",
    "ModelError",
    "NormalizationConfig",
    "ResidualBackbone",
    "SimCLREncoder",
    "TargetScaling",
    "TrainConfig",
    "TrainResult",
    "add_noise",
    "affine_transform",
    "autocast",
    "balanced_decision_weights",
    "band_indices",
    "batched_apply",
    "build_model",
    "center_crop",
    "decide",
    "embed",
    "entropy",
    "evaluate",
    "expected_calibration_error",
    "extinction_coefficient",
    "extinction_coefficients",
    "fit",
    "fit_normalization",
    "fit_temperature",
    "fit_temperature_and_bias",
    "flip",
    "fold_batchnorm",
    "fwhm_to_sigma_pixels",
    "gaussian_blur",
    "jitter_crop",
    "load_checkpoint",
    "load_model",
    "make_loader",
    "mc_dropout_predict",
    "mutual_information",
    "nt_xent_loss",
    "pick_device",
    "pit_calibration",
    "predict_classes",
    "predict_targets",
    "prepare_for_inference",
    "read_rows",
    "reconstruction_errors",
    "reconstruction_scores",
    "redden",
    "reliability_diagram",
    "robust_sigma",
    "rotate",
    "save_checkpoint",
    "seed_everything",
]
