package migrations

// UpTo applies River's migrations and hookline's up to version.
var UpTo = up
