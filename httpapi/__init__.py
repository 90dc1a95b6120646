"""The HTTP toolkit every service's views share: input fields, who the caller is, request
headers, the OpenAPI schema and one exception handler that answers each domain error.

It imports no service: each service's viewset declares the answers to its own errors
(ServiceViewSet.error_answers).
"""
