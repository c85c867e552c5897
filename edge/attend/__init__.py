"""Attendance station: enrol, recognise, log, publish."""
