"""The REST session API at ``/uploads``: parts in any order, status, verified completion."""
