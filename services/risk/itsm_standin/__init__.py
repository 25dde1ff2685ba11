"""A local ITSM stand-in: the ServiceNow Table API and Jira REST v3 shapes that the connectors use, on loopback.

It exists so that the demo and the tests drive the connectors over real HTTP, failures included, without a
ServiceNow instance or a Jira site. It keeps its tickets in a JSON file, so stopping and starting it loses
nothing. ``python -m services.risk.itsm_standin --help`` lists its options; ``/_standin/...`` is a control API
for tests (state, injected faults, request log) and needs no credentials.
"""
