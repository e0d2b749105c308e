"""Evaluation beyond one balanced test set: shifted test distributions, post-hoc adjustment, cached predictions,
model comparison and the static leaderboard report."""
