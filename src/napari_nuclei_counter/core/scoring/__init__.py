"""Trust: annotations, matching, scores, the parameter search and estimate."""
