"""Segment Anything (image encoder, prompt encoder, mask decoder) with Meta's names,
and CrackSAM's adapter/LoRA deltas."""
