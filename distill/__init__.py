"""crack-distill: the workstation half (data, teacher, student, distillation, export)."""
