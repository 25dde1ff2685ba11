"""Risk review: budgets and unpriced usage become findings that someone owns."""
