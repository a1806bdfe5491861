/* For the inventory/ components only: the database handle behind a store. */
#pragma once

#include <pthread.h>
#include <sqlite3.h>
#include "store.h"

struct store {
	sqlite3 *db;
	pthread_mutex_t lock; /* one writer at a time, one transaction at a time */
};

struct store_txn {
	sqlite3 *db; /* inside BEGIN IMMEDIATE, with the store's lock held */
};
