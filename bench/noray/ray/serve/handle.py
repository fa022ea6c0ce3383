"""`DeploymentHandle` exists only as a name: apps composed through handles need `lihq serve`."""


class DeploymentHandle:  # plainhost refuses apps bound with one
    pass
