"""The integration suite's settings, shared by its conftest and its tests."""

TOKEN = "integration-test-token"
INTERNAL_TOKEN = "integration-internal-token"
DATASET = "flights"
TRAIN_ROWS, TEST_ROWS = 120, 40

#: What Compose would read from the shell or .env: the only source of interpolated values.
VARIABLES = {
    "LESSLABELS_TOKEN": TOKEN,
    "LESSLABELS_INTERNAL_TOKEN": INTERNAL_TOKEN,
    "LESSLABELS_LOG_LEVEL": "INFO",
    "LESSLABELS_TRAINER_THREADS": "1",
    "LESSLABELS_SCORER_THREADS": "1",
}
#: Extra environment of the local processes (under each service's own): keep the 2 cores usable.
CHILD_ENV = {
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
