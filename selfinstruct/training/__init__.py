"""Training: full-parameter SFT of a causal LM with loss on the response only.

Entry point: ``train.train`` (`selfinstruct train`). ``examples`` turns rows into token ids with
labels built once (prompt tokens are ``IGNORE_INDEX``) and pads or packs them; ``sft`` is the
transformers ``Trainer`` subclass; ``loss`` is the (chunked) response-only loss; ``progress`` holds the
metrics journal and progress bar; ``processes`` says which process writes and prints under torchrun or
``accelerate launch``, and when a launch started fewer processes than asked. It reads rows through ``data``.
"""
