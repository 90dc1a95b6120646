"""The HTTP toolkit every service's views share: input fields, who the caller is, request
headers, the OpenAPI schema and one exception handler that answers each domain error.

It imports no service: each service declares the answers to its own errors here
(httpapi.errors.answer_errors).
"""
