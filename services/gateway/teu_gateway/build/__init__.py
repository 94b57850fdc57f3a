"""``teu build``: Dockerfiles parsed (dockerfile, words), contexts read (context, ignore), images built (builder)."""
