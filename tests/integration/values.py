"""The integration suite's settings, shared by its conftest and its tests."""

from lesslabels.client import Amount, RunConfig, StoppingRule

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


def tiny_run_config(base_model: str, *, seed_size: int, batch_size: int, rounds: int, random_seed: int) -> RunConfig:
    """A simulated entropy run over DATASET that trains for one short epoch per round on one thread."""
    return RunConfig(
        dataset=DATASET,
        base_model=base_model,
        strategy="entropy",
        seed_size=Amount(count=seed_size),
        batch_size=Amount(count=batch_size),
        stopping=StoppingRule(max_rounds=rounds),
        oracle="simulated",
        random_seed=random_seed,
        hyperparameters={"max_epochs": 1, "batch_size": 8, "max_length": 32, "num_threads": 1},
    )
