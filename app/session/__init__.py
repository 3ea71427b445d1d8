"""What one session is looking at: its state keys and their defaults (state.py), the address bar (urlstate.py), which
model it uses and what it may load (which_model.py, sources.py), and text from outside shown safely (text.py)."""
