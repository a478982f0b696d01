"""One module per system; a recipe wires stages together and owns no stage logic."""
