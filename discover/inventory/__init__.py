"""The cluster inventory: typed Kubernetes objects, loaded from files or the live API."""
