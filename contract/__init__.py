"""What the load generator and the reference backend share: storage schema, probe queries, Redis key shapes, the
services' default addresses (:mod:`contract.schema`) and the fault-injection admin API (:mod:`contract.faults`).

Stdlib only, and it imports nothing else of the project: the backend (``reference_backend/``) and the generator
(``users/``, ``scenarios/``, ``sla_checks/`` ...) both import it, never each other.
"""
