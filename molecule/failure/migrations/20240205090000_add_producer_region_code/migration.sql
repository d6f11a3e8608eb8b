-- A migration that passed on an empty dev database and fails on real rows:
-- two producers share a region, so the unique index cannot be built. Prisma
-- does not wrap it in a transaction: the new column and the backfill stay.
ALTER TABLE "producers" ADD COLUMN "region_code" TEXT;

UPDATE "producers" SET "region_code" = upper(left("region", 3));

CREATE UNIQUE INDEX "producers_region_code_key" ON "producers"("region_code");
