"""How the embedded models were made: training and model-card scripts, kept out of the library proper."""
