//! Attachments: the files users upload (`files`, the bytes live in the
//! object store under `files/<id>`), which message holds each one
//! (`message_files`: a file is in at most one message), and a copy of each
//! message's attachment list on its row (`messages.attachments`, JSON), so
//! history and streams read a message whole without a join.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .if_not_exists()
                    .col(string_len(Files::Id, 36).primary_key())
                    .col(string_len(Files::UploaderId, 36))
                    .col(text(Files::Name))
                    .col(string_len(Files::ContentType, 128))
                    .col(big_integer(Files::Size))
                    .col(integer(Files::Width).default(0))
                    .col(integer(Files::Height).default(0))
                    .col(boolean(Files::HasThumbnail).default(false))
                    .col(string_len(Files::Etag, 80))
                    .col(big_integer(Files::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Files::Table, Files::UploaderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The per-user daily quota sums a user's recent uploads; the sweep
        // looks for old ones.
        manager
            .create_index(
                Index::create()
                    .name("idx_files_uploader_created")
                    .table(Files::Table)
                    .col(Files::UploaderId)
                    .col(Files::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_files_created")
                    .table(Files::Table)
                    .col(Files::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MessageFiles::Table)
                    .if_not_exists()
                    // The primary key makes a second attach of one file a
                    // unique violation, which the send path answers exactly.
                    .col(string_len(MessageFiles::FileId, 36).primary_key())
                    .col(string_len(MessageFiles::MessageId, 36))
                    .col(string_len(MessageFiles::ChatId, 36))
                    .col(integer(MessageFiles::Position))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MessageFiles::Table, MessageFiles::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_message_files_message")
                    .table(MessageFiles::Table)
                    .col(MessageFiles::MessageId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(text(Messages::Attachments).default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .drop_column(Messages::Attachments)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(MessageFiles::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Files::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
    UploaderId,
    Name,
    ContentType,
    Size,
    Width,
    Height,
    HasThumbnail,
    Etag,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MessageFiles {
    Table,
    FileId,
    MessageId,
    ChatId,
    Position,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Attachments,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
