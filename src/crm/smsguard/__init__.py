"""SMS pumping defence: allowed countries, a daily budget, number-range caps, a conversion watch."""
