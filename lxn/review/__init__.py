"""The review loop: the rows of a night a person should look at, out to a labelling tool
(`export`), and what the person decided, back in as a COCO dataset prepare reads (`ingest`)."""
