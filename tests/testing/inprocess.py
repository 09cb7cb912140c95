"""Imported by the modules that run pytest in-process (``pytester.runpytest_inprocess``).

Each in-process run drops the modules it imported. Imported anew, a SQLAlchemy dialect
registers its SQL functions twice (an SAWarning, so an error under ``filterwarnings=error``)
and a driver's C extension can crash the interpreter. Importing them all here, once, before
any run, keeps them loaded.
"""

import aiomysql  # noqa: F401
import aiosqlite  # noqa: F401
import asyncpg  # noqa: F401
import psycopg  # noqa: F401
import pymysql  # noqa: F401
import sqlalchemy.dialects.mysql.aiomysql
import sqlalchemy.dialects.mysql.pymysql
import sqlalchemy.dialects.postgresql.asyncpg
import sqlalchemy.dialects.postgresql.psycopg
import sqlalchemy.dialects.sqlite.aiosqlite  # noqa: F401
