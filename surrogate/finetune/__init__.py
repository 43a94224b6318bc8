"""LoRA training toward human behaviour: planned, not built yet.

Scoring already accepts a trained PEFT adapter (`ModelSpec(adapter=...)`); training one from
Psych-201 transcripts with held-out participants and experiments is future work.
"""
