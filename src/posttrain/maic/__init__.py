"""MAIC-UI: teaching documents to interactive courseware (issue 27)."""
