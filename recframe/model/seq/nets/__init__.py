"""The sequence models' plain ``nn.Module`` networks, one per option, and the parts they share.

``gru``, ``lstm`` and ``sasrec`` hold the networks; ``item_scores`` scores every item from a state
and ``sampled_losses`` holds the losses over sampled items.
"""
