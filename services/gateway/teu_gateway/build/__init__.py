"""``teu build``: Dockerfiles parsed (dockerfile, words), contexts read (context), images built (builder)."""
