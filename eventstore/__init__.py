"""The shared, append-only event store every service app builds on. The services import
`eventstore.api` only; the rest of the package is its inside."""
