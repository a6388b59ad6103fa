"""The business's own people (operators) who use the back-office console: roles, passwords,
console sessions."""
