"""``model=auto``: a recommender that searches, trains and blends its members on validation."""
