//! Messages people can change: edits, tombstones, replies, mentions and
//! reactions; group owners; and the per-chat change log that makes every
//! change resumable like a message.
//!
//! SQLite takes one ALTER TABLE change per statement, so each column is
//! added on its own.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            big_integer_null(Messages::EditedAt),
            big_integer_null(Messages::DeletedAt),
            string_len_null(Messages::ReplyToId, 36),
            // Space-separated ids of the members the message mentions.
            text(Messages::Mentions).default("").to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Messages::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // Highest change_seq handed out; bumped in each change's transaction.
        manager
            .alter_table(
                Table::alter()
                    .table(Chats::Table)
                    .add_column(big_integer(Chats::LastChange).default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reactions::Table)
                    .if_not_exists()
                    .col(string_len(Reactions::MessageId, 36))
                    .col(string_len(Reactions::UserId, 36))
                    .col(string_len(Reactions::Emoji, 32))
                    .col(string_len(Reactions::ChatId, 36))
                    .col(big_integer(Reactions::CreatedAt))
                    // One reaction per person and emoji: adding twice is a no-op.
                    .primary_key(
                        Index::create()
                            .col(Reactions::MessageId)
                            .col(Reactions::UserId)
                            .col(Reactions::Emoji),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reactions::Table, Reactions::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reactions::Table, Reactions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Mentions::Table)
                    .if_not_exists()
                    .col(string_len(Mentions::MessageId, 36))
                    .col(string_len(Mentions::UserId, 36))
                    .col(string_len(Mentions::ChatId, 36))
                    .col(big_integer(Mentions::Seq))
                    .primary_key(
                        Index::create()
                            .col(Mentions::MessageId)
                            .col(Mentions::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Mentions::Table, Mentions::MessageId)
                            .to(Messages::Table, Messages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Mentions::Table, Mentions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Unread mentions: a user's mentions in a chat above their read seq.
        manager
            .create_index(
                Index::create()
                    .name("mentions_user_id_chat_id_seq")
                    .table(Mentions::Table)
                    .col(Mentions::UserId)
                    .col(Mentions::ChatId)
                    .col(Mentions::Seq)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatChanges::Table)
                    .if_not_exists()
                    .col(string_len(ChatChanges::ChatId, 36))
                    .col(big_integer(ChatChanges::ChangeSeq))
                    // edited, deleted, reaction, renamed, member
                    .col(string_len(ChatChanges::Kind, 16))
                    .col(string_len_null(ChatChanges::MessageId, 36))
                    // Who made the change (no foreign key: the log outlives
                    // nothing it refers to but the chat).
                    .col(string_len(ChatChanges::UserId, 36))
                    // What the change needs besides: JSON, never message text.
                    .col(text(ChatChanges::Payload).default(""))
                    .col(big_integer(ChatChanges::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ChatChanges::ChatId)
                            .col(ChatChanges::ChangeSeq),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatChanges::Table, ChatChanges::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ChatChanges::Table.into_iden(),
            Mentions::Table.into_iden(),
            Reactions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Chats::Table)
                    .drop_column(Chats::LastChange)
                    .to_owned(),
            )
            .await?;
        for column in [
            Messages::Mentions,
            Messages::ReplyToId,
            Messages::DeletedAt,
            Messages::EditedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Messages::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    LastChange,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    EditedAt,
    DeletedAt,
    ReplyToId,
    Mentions,
}

#[derive(DeriveIden)]
enum Reactions {
    Table,
    MessageId,
    UserId,
    Emoji,
    ChatId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Mentions {
    Table,
    MessageId,
    UserId,
    ChatId,
    Seq,
}

#[derive(DeriveIden)]
enum ChatChanges {
    Table,
    ChatId,
    ChangeSeq,
    Kind,
    MessageId,
    UserId,
    Payload,
    CreatedAt,
}
