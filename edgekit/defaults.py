"""Default values of every tunable setting, in one place that imports nothing.

The library's functions and the CLI's options both take their defaults from here, so `--help`, the
README and a Python caller never disagree, and the CLI can show them without importing the library.
"""

# --- convert: data ---------------------------------------------------------------------------
CALIBRATION_SIZE = 300  # calibration samples used (spread evenly over the data)
EVAL_SIZE = 500  # 500 MobileNet-sized inputs are already 300 MB of float32
MEAN = 0.0  # pixel mean on 0-255 values
STD = 255.0  # pixel std on 0-255 values: inputs in [0, 1]
OUT = "bundles"

# --- convert: checks -------------------------------------------------------------------------
MIN_AGREEMENT = 0.90  # top-1 agreement with the source
MIN_COSINE = 0.98  # mean cosine similarity with the source
AUTO_MAX_ACCURACY_DROP = 1.0  # -q auto with labelled --eval-data: a mode may cost at most 1 point
SUSPECT_ERROR = 0.2  # debug: a layer losing a fifth of its channels' signal is worth a look

# --- convert: pruning ------------------------------------------------------------------------
PRUNE_NORM = "l1"
PRUNE_CHANNELS_MULTIPLE = 8  # channels kept per layer are rounded to a multiple of this
FINETUNE_EPOCHS = 4
FINETUNE_LEARNING_RATE = 2e-4  # gentle: the pruned model starts close to a good solution

# --- run / bench -----------------------------------------------------------------------------
BUDGET_MS = 10.0  # when neither the target nor the user says otherwise
WARMUP = 10
REPEAT = 100
TOP_K = 5
CONF = 0.25  # detect: lowest score a box is kept with
IOU = 0.45  # detect: overlap above which non-maximum suppression drops the weaker box of a class
MAX_DETECTIONS = 100  # detect: boxes reported per input at most
