"""confide package."""
