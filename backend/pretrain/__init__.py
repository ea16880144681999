"""The general galaxy encoder: a pretraining corpus (GalSim galaxies rendered like several
surveys, plus real unlabelled images) and the self-supervised run that ships in ``assets/``."""
