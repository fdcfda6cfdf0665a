"""Dashboards and the plotly figures they show."""
