"""Executions live in Temporal, beside the registry's SQL store.

`models` holds the API models of an execution, `service` starts executions and reads
them back, and `history` builds an execution's record from its Temporal history.
Nothing about an execution is stored by the gateway, so any gateway answers for any
execution, and a restarted gateway has lost nothing.
"""
