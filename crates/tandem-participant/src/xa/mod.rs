//! XA: prepared transactions on PostgreSQL and MySQL/MariaDB (see the crate docs).
