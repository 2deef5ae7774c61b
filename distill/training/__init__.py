"""Training: the student trainer, the teacher's own training, the losses (hard, KD,
IGMSDA, RFKD) and the teacher-logit cache."""
