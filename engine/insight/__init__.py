"""Insight: what the library and the sessions tell. Scenario tests and coverage, realistic
simulation, the report's rates, and diagrams. Imports definitions/ and sessions/.
"""
