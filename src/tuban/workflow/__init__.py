"""Workflow (业务流程): rounds, tasks, office review, determination, reporting, cases.

Service functions take a :class:`tuban.store.Store` and the acting user (:class:`Actor`)
and write through ``store.transaction()`` so every change is audited in the same
transaction. Modules:

* :mod:`~tuban.workflow.states`   the patch and case state machines (domain.md §6)
* :mod:`~tuban.workflow.access`   actors, verbs, visibility (another county's item = not found)
* :mod:`~tuban.workflow.rounds`   rounds, tasks, dashboard
* :mod:`~tuban.workflow.review`   office review: fields, reject, link, split/merge, comments, decisions
* :mod:`~tuban.workflow.reporting` determination, submit, accept/return; cases
* :mod:`~tuban.workflow.queries`  patch lists, map features, history

Heavy imports stay in the submodules.
"""

from __future__ import annotations

__all__: list[str] = []
