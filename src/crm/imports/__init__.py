"""Contact imports: the batch pipeline the CLI and the Back-Office import jobs share."""
