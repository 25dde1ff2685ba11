"""Cost allocation: prices usage from the catalogue and attributes the cost to teams and cost centres."""
