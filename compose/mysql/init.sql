-- Source database of the compose stack. The image creates database `inventory` and user
-- `cdc` (MYSQL_DATABASE / MYSQL_USER); this adds the replication grants and two tables.
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%';
USE inventory;
CREATE TABLE products (
    id          BIGINT PRIMARY KEY,
    sku         VARCHAR(64) NOT NULL UNIQUE,
    name        VARCHAR(255) NOT NULL,
    price       DECIMAL(10, 2) NOT NULL,
    updated_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
CREATE TABLE stock (
    product_id  BIGINT PRIMARY KEY,
    quantity    INT NOT NULL,
    CONSTRAINT fk_stock_product FOREIGN KEY (product_id) REFERENCES products (id)
);
INSERT INTO products (id, sku, name, price) VALUES (1, 'KB-01', 'Keyboard', 49.90), (2, 'MS-01', 'Mouse', 19.90);
INSERT INTO stock (product_id, quantity) VALUES (1, 10), (2, 25);
