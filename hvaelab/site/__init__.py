"""The lesson site that needs no server: its static files (js/preprocess.js, ...)."""
