"""The plain ``nn.Module`` networks of the sequence models, one per option, and what they share
(all-item scoring, sampled losses)."""
