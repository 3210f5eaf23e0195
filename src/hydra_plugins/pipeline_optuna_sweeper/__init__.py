"""The project's Hydra sweeper: `hydra/sweeper=optuna`, a search driven by Optuna's own ask/tell
API on a current Optuna (the Hydra Optuna sweeper pins optuna<3, whose storage does not work
with SQLAlchemy 2), its trials shareable between workers through an RDB storage."""
