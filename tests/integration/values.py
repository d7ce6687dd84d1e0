"""The integration suite's settings, shared by its conftest and its tests."""

TOKEN = "integration-test-token"
INTERNAL_TOKEN = "integration-internal-token"
#: With characters a URL would need escaped: the pool must get it through PGPASSWORD intact.
POSTGRES_PASSWORD = "integration pg:p@ss/word"
DATASET = "flights"
TRAIN_ROWS, TEST_ROWS = 120, 40

#: What Compose would read from the shell or .env: the only source of interpolated values.
VARIABLES = {
    "LESSLABELS_TOKEN": TOKEN,
    "LESSLABELS_INTERNAL_TOKEN": INTERNAL_TOKEN,
    "LESSLABELS_POSTGRES_PASSWORD": POSTGRES_PASSWORD,
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
