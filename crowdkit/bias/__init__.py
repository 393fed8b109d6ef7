"""Part II, the bias study: photo descriptors, the ethnicity classifier and its lookup
table, mini-batch sampling, triplet training and the LFW evaluation."""
