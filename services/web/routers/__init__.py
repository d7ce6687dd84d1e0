"""One APIRouter per area: labelling, runs, datasets (and the login)."""
