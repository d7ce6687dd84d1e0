"""runs stored before asynchronous rounds keep their synchronous rounds: their configuration says so

RunConfig.asynchronous left unset means "on for the human oracle"; a run stored before the field
existed started with batch rounds and must go on with them, so its stored configuration gets
"asynchronous": false. The downgrade removes the field from every stored configuration (the older
code does not know it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:30:00
"""

import json

from alembic import op
import sqlalchemy as sa


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("config_json", sa.Text))


def _rewrite(change) -> None:
    connection = op.get_bind()
    for run_id, text in connection.execute(sa.select(runs.c.id, runs.c.config_json)).all():
        try:
            config = json.loads(text or "{}")
        except ValueError:
            continue  # unreadable: the run store marks such a run FAILED when it is read
        if isinstance(config, dict) and change(config):
            connection.execute(
                runs.update().where(runs.c.id == run_id).values(config_json=json.dumps(config, sort_keys=True))
            )


def upgrade() -> None:
    def stay_synchronous(config: dict) -> bool:
        if "asynchronous" in config:
            return False
        config["asynchronous"] = False
        return True

    _rewrite(stay_synchronous)


def downgrade() -> None:
    _rewrite(lambda config: config.pop("asynchronous", None) is not None)
