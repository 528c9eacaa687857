"""Authentication: who is calling (the credentials `scheme.py` reads) and what they may do."""
